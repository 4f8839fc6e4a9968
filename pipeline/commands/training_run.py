"""What the train commands share: a progress bar of steps, the report of skipped files,
and errors turned into ``error: ...`` with exit code 2 (130 for Ctrl-C, with how to resume)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
from tqdm import tqdm

from ..errors import PipelineError

EXIT_INVALID, EXIT_INTERRUPTED = 2, 130


class TrainingRun:
    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc, self.quiet = desc, quiet
        self.bar: tqdm | None = None

    def skipped(self, skipped: list[tuple[Path, str]]) -> None:
        if skipped:
            typer.echo(f"skipped {len(skipped)} file(s):", err=True)
        for path, reason in skipped:
            typer.echo(f"  skipped  {path}: {reason}", err=True)

    def step(self, steps: int, start_step: int, **losses: float) -> None:
        """One step done; ``losses`` are shown beside the bar."""
        if self.bar is None:
            self.bar = tqdm(total=steps, initial=start_step, unit="step", desc=self.desc,
                            disable=self.quiet or None, dynamic_ncols=True)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        self.bar.update(1)

    @contextlib.contextmanager
    def reporting_errors(self) -> Iterator[None]:
        try:
            yield
        except (PipelineError, ValueError, OSError, FloatingPointError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; run the same command with --resume to continue from the "
                       "last checkpoint", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            if self.bar is not None:
                self.bar.close()
