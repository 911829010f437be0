"""``<data_root>/algonomy/inbox``: files of user ids dropped by people or other systems, each read
once and then moved aside (``done/<run>/``, or ``rejected/<run>/`` with its problems beside it).

A file in the inbox itself is for every Algonomy account the run covers; a file in
``inbox/<account>/`` is for that account only."""

from __future__ import annotations

import re
from dataclasses import dataclass

INBOX = "algonomy/inbox"
SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".errors.txt")


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:120]


@dataclass
class InboxFile:
    name: str
    path: str


class Inbox:
    """``<data_root>/algonomy/inbox``: files of user ids, each processed once, then moved aside."""

    def __init__(self, root: str | None = None, account: str | None = None) -> None:
        from vendorflow import settings
        from vendorflow.pipeline.storage import Lake

        self.lake = Lake(root or settings.data_root())
        self.fs = self.lake.fs
        self.account = account  # None: the shared inbox, for every account of the run
        self.folder = self.lake.join(INBOX, account) if account else self.lake.join(INBOX)

    def files(self) -> list[InboxFile]:
        if not self.fs.exists(self.folder):
            return []
        found = []
        for info in self.fs.ls(self.folder, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") != "file" or name.startswith((".", "_")) or name.lower().endswith(SKIPPED_SUFFIXES):
                continue  # hidden, still being written (write then rename), or our own notes
            found.append(InboxFile(name, info["name"]))
        return sorted(found, key=lambda f: f.name)

    def read(self, item: InboxFile) -> bytes:
        return self.fs.cat_file(item.path)

    def _move(self, item: InboxFile, where: str, run_id: str) -> str:
        folder = f"{self.folder}/{where}/{_safe(run_id)}"
        self.fs.makedirs(folder, exist_ok=True)
        target = f"{folder}/{item.name}"
        self.fs.mv(item.path, target)
        return target

    def done(self, item: InboxFile, run_id: str) -> str:
        return self._move(item, "done", run_id)

    def reject(self, item: InboxFile, run_id: str, error: str) -> str:
        target = self._move(item, "rejected", run_id)
        self.fs.pipe_file(f"{target}.errors.txt", (error + "\n").encode())
        return target
