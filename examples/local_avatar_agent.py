"""A livekit-agents worker whose agent needs no keys but the LiveKit server's: the in-process
LocalAvatar speaks bundled clips (greets on join, answers every user turn) and the user's voice
interrupts it (VAD).

python examples/local_avatar_agent.py dev                        # against LIVEKIT_URL
python examples/local_avatar_agent.py dev --markers              # for livekit-avsync measure --room
python examples/local_avatar_agent.py dev --avatar replay:rec.mkv    # recorded provider output
"""

from avatar_worker import run

if __name__ == "__main__":
    run(avatar="local", agent="bundled")
