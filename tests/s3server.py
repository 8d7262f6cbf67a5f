"""A real S3 API server on loopback for tests and benchmarks: moto's server (``moto_server``, from PyPI) in its
own process, reached over HTTP by Spark's s3a connector, pyarrow and delta-rs exactly as they reach S3.

The server checks request signatures: it accepts unsigned requests only until the test user and its key
exist (``INITIAL_NO_AUTH_ACTION_COUNT``), then refuses wrong credentials as S3 does. (S3Proxy 2.6.0, the
other candidate, answers 501 to checksum headers that current pyarrow and boto3 send by default.) The
``moto_server`` of this environment is used, never one found on PATH: another moto on this machine fails
pyarrow's multipart uploads and signed listings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

__all__ = ["S3Server", "start_s3_server"]

#: IAM calls made without credentials before authentication is enforced: create user, policy, key.
_SETUP_ACTIONS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    """A running server: its endpoint, the test user's key, and the Spark settings that reach it."""

    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen = field(repr=False)

    def spark_conf(self, bucket: str = "") -> Dict[str, str]:
        """``spark.hadoop.fs.s3a.*`` settings for this server (for one bucket when ``bucket`` is given)."""
        prefix = f"spark.hadoop.fs.s3a.bucket.{bucket}." if bucket else "spark.hadoop.fs.s3a."
        return {prefix + "endpoint": self.endpoint, prefix + "access.key": self.access_key,
                prefix + "secret.key": self.secret_key, prefix + "path.style.access": "true",
                prefix + "endpoint.region": "us-east-1"}

    def conf_args(self, bucket: str = "") -> List[str]:
        """The same settings as ``--conf`` flags of ``tma-spark``."""
        return [a for k, v in self.spark_conf(bucket).items() for a in ("--conf", f"{k}={v}")]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> List[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_s3_server(buckets=("lake",)) -> S3Server:
    """Start ``moto_server`` on a free loopback port, create a user allowed everything (whose key then signs
    every request) and ``buckets``."""
    exe = str(Path(sys.executable).with_name("moto_server"))  # this environment's, not one found on PATH
    if not os.path.exists(exe):
        raise RuntimeError("moto_server is not installed. Fix: run scripts/setup.sh (requirements.txt has "
                           "moto[server]).")
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS)}
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
                       region_name="us-east-1")
    iam.create_user(UserName="tma")
    iam.put_user_policy(UserName="tma", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="tma")["AccessKey"]
    server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], proc)
    for bucket in buckets:
        server.create_bucket(bucket)
    return server
