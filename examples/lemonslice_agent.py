"""The worker with a LemonSlice avatar (relayed from a private side room) and STT/LLM/TTS
through LiveKit Inference.

python examples/lemonslice_agent.py dev   # needs LEMONSLICE_API_KEY and LEMONSLICE_AGENT_ID
"""

from avatar_worker import run

if __name__ == "__main__":
    run(avatar="lemonslice", agent="inference")
