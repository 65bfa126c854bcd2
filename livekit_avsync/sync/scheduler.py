from typing import Literal

SyncMode = Literal["auto", "timestamps", "arrival"]
