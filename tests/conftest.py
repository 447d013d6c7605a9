"""Shared fixtures: a tiny demo data set, generated once per test session; the demo data cache
and the migrated MLflow database that the sweep tests copy."""

from pathlib import Path

import pytest

from vtd.data import DataConfig
from vtd.demo.generate import DemoConfig, DemoDatasets, DemoLayout, ensure_demo

TINY_DEMO = DemoConfig(
    seed=3,
    min_frames=8,
    max_frames=10,
    objectattention=DemoLayout(train_shows=3, test_shows=1, clips_per_show=2, width=96, height=72),
    videoattentiontarget=DemoLayout(
        train_shows=2, test_shows=1, clips_per_show=2, width=96, height=64
    ),
)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasets:
    """Both demo layouts, a few short clips each: enough to train the small model a step."""
    return ensure_demo(tmp_path_factory.mktemp("demo-cache"), TINY_DEMO)


@pytest.fixture(scope="session")
def tiny_demo_data(tiny_demo: DemoDatasets) -> DataConfig:
    """The ObjectAttention-layout demo: train sessions, one held out for validation, test."""
    return DataConfig(sources=[str(tiny_demo.objectattention.root)], validation={"groups": 1})


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo data cache (and demo-pretrained checkpoint) for every sweep run by the tests."""
    return tmp_path_factory.mktemp("sweep-cache")


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, migrated once (a new one costs about 1.5 s of migrations)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path
