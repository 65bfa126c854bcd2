"""A livekit-agents worker whose agent speaks through the in-process LocalAvatar (no avatar keys).

python examples/local_avatar_agent.py dev
"""

from avatar_worker import run

from livekit_avsync import LocalAvatar

if __name__ == "__main__":
    run(lambda: LocalAvatar(width=1280, height=720, fps=25))
