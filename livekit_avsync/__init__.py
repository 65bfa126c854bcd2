"""livekit-avsync"""
