"""Where a project's files live. The repository root is a ready workspace; ``--workdir`` picks
another folder with the same layout."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aes_ensemble.errors import AesError, did_you_mean


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Workspace:
        path = Path(root).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise AesError("workspace is not a folder", path=path)
        return cls(path)

    @property
    def configs_dir(self) -> Path:
        return self.root / "configs"

    @property
    def base_models_dir(self) -> Path:
        return self.root / "base_models"

    @property
    def oof_dir(self) -> Path:
        return self.root / "oof"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def folds_path(self) -> Path:
        return self.root / "folds.csv"

    @property
    def folds_meta_path(self) -> Path:
        return self.root / "folds.json"

    @property
    def data_config_path(self) -> Path:
        return self.configs_dir / "data.yaml"

    @property
    def submission_path(self) -> Path:
        return self.root / "submission.csv"

    def model_dir(self, learner: str, fold: int) -> Path:
        return self.base_models_dir / learner / f"fold_{fold}"

    def oof_path(self, name: str) -> Path:
        return self.oof_dir / f"{name}.parquet"

    def config_path(self, name: str) -> Path:
        """``configs/NAME.yaml`` of the workspace, else the one shipped with the package."""
        own = self.configs_dir / f"{name}.yaml"
        if own.is_file():
            return own
        shipped = shipped_configs()
        if name in shipped:
            return shipped[name]
        known = {p.stem for p in self.configs_dir.glob("*.yaml")} | set(shipped)
        raise AesError(f"no config named '{name}'{did_you_mean(name, known)}", path=own)


def shipped_configs() -> dict[str, Path]:
    """The YAML configs installed with the package (the repository's ``configs/``)."""
    folder = resources.files("aes_ensemble.configs")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }
