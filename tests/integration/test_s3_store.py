"""The tile store on an S3-protocol object store (moto's S3 server on loopback, real HTTP)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the S3 test server (moto) did not start")
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(10)


@pytest.fixture
def s3_settings(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PathStreamSettings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "pathstream-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "pathstream-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client(
        "s3",
        endpoint_url=f"http://{s3_endpoint}",
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket="hospital-stores")
    return PathStreamSettings(
        data_dir=tmp_path,
        store_root="s3://hospital-stores/pathstream",
        s3_endpoint=s3_endpoint,
        s3_scheme="http",
        s3_region="us-east-1",
        s3_virtual_addressing=False,
    )


def test_ingest_to_s3_and_read_back(s3_settings: PathStreamSettings, tmp_path: Path) -> None:
    slide = SHARED_DATA / "wsi" / "CMU-1-Small-Region.svs"
    ctx = tiledb_context(s3_settings)
    remote = ingest_slide(slide, s3_settings.store_root, "cmu", ctx=ctx)
    assert remote.store_uri == "s3://hospital-stores/pathstream/cmu"
    local = ingest_slide(slide, str(tmp_path), "cmu")

    store = TileStore.open(remote.store_uri, ctx=ctx)
    assert store.sha256 == local.sha256
    for name in ("20x", "1.25x"):
        a = store.array(name).read(40, 50, 120, 90)
        b = TileStore.open(local.store_uri).array(name).read(40, 50, 120, 90)
        assert a.shape == (90, 120, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    assert ingest_slide(slide, s3_settings.store_root, "cmu", ctx=ctx).reused
