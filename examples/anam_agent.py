"""The worker with an Anam avatar and STT/LLM/TTS through LiveKit Inference
(pip install 'livekit-avsync[anam]').

python examples/anam_agent.py dev     # needs ANAM_API_KEY and ANAM_AVATAR_ID too
"""

from avatar_worker import run

if __name__ == "__main__":
    run(avatar="anam", agent="inference")
