"""The same worker with a LemonSlice avatar, relayed from a private side room.

python examples/lemonslice_agent.py dev   # needs LEMONSLICE_API_KEY and LEMONSLICE_AGENT_ID
"""

from avatar_worker import run

from livekit_avsync.providers.lemonslice import LemonSliceAvatar

if __name__ == "__main__":
    run(LemonSliceAvatar, extra_settings=("LEMONSLICE_API_KEY",))
