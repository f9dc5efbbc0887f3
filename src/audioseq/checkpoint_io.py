"""Checkpoint files that are either the old version or the new one, never half of one.

Lightning writes a checkpoint through fsspec's transaction: into a temporary file under
the system's temp folder, then moved into place. When that folder is on another file
system than the run (a local /tmp, runs on NFS or Lustre), the move is a copy, and a job
killed during it leaves a truncated ``last.ckpt``, the one file a resume needs. Here a
local checkpoint is first written beside its final name (``NAME.partial``), then renamed
over it: a rename within one folder is atomic. Remote paths keep Lightning's behaviour.
"""

import os
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem

PARTIAL = ".partial"


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves end in one atomic rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        final = Path(path)
        partial = final.with_name(final.name + PARTIAL)
        try:
            super().save_checkpoint(checkpoint, partial, storage_options)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
