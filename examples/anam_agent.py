"""The same worker with an Anam avatar (pip install 'livekit-avsync[anam]').

python examples/anam_agent.py dev     # needs ANAM_API_KEY and ANAM_AVATAR_ID too
"""

from avatar_worker import run

from livekit_avsync.providers.anam import AnamAvatar

if __name__ == "__main__":
    run(AnamAvatar, extra_settings=("ANAM_API_KEY", "ANAM_AVATAR_ID"))
