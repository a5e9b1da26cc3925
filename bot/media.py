"""Photos are evidence: downloaded and kept content-addressed beside their Telegram file ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, suffix: str = ".jpg") -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes, suffix: str = ".jpg") -> tuple[str, Path]:
        """Store bytes under their SHA-256 (idempotent); returns (hash, path)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest, suffix)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a crash never leaves half a photo under its hash
        return digest, path
