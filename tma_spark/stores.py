"""Object-store settings for code outside Spark jobs, taken from the settings the user gave Spark.

Spark stages reach ``s3a://``, ``abfss://``, ``gs://`` … through Hadoop's connectors, configured with
``spark.hadoop.fs.s3a.*`` (and the ``fs.azure.*`` / ``fs.gs.*``) keys. Trainer tasks, the driver's
metadata and Delta log reads and evaluation read the same data with pyarrow and ``deltalake`` (delta-rs),
which have their own option names. This module translates the Hadoop keys (``fs.s3a.endpoint``,
``fs.s3a.access.key``, per-bucket ``fs.s3a.bucket.NAME.*`` …) into those options, so that one set of
settings serves both. Keys the user did not set fall back to each library's default chain: the standard
``AWS_*`` environment variables, ``~/.aws`` profiles and instance credentials.

It also turns the stores' error texts (pyarrow's, and Hadoop's seen through Py4J) into one message that
names the path and the setting to fix (:func:`explain`). Pure Python: no Spark, no pyarrow at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

__all__ = ["S3_SCHEMES", "OBJECT_STORE_SCHEMES", "scheme", "split_bucket", "S3Settings", "s3_settings", "explain"]

S3_SCHEMES = ("s3a", "s3", "s3n")
#: Schemes whose writes are single PUTs: complete or absent, but without atomic rename or append.
OBJECT_STORE_SCHEMES = S3_SCHEMES + ("gs", "gcs", "abfs", "abfss", "az", "wasb", "wasbs")


def scheme(path: str) -> str:
    """The URI scheme of ``path`` (``""`` for a plain local path, ``file`` for ``file:`` URIs)."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", path)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else ""


def split_bucket(path: str) -> Tuple[str, str]:
    """``(bucket, key)`` of ``s3a://bucket/key`` (the key without a leading slash)."""
    rest = path.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


@dataclass(frozen=True)
class S3Settings:
    """The S3 settings of one bucket, as Spark's S3A connector would use them (None: the library default)."""

    endpoint: Optional[str] = None  # host[:port], without the scheme
    https: bool = True
    region: Optional[str] = None
    access_key: Optional[str] = field(default=None, repr=False)  # credentials never appear in logs
    secret_key: Optional[str] = field(default=None, repr=False)
    session_token: Optional[str] = field(default=None, repr=False)
    path_style: bool = False

    def arrow_options(self) -> dict:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem``."""
        from pyarrow import fs as pafs

        opts: dict = {"connect_timeout": 10, "request_timeout": 60, "allow_delayed_open": True,  # small: 1 PUT
                      "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
        if self.endpoint:
            opts["endpoint_override"] = self.endpoint
            opts["scheme"] = "https" if self.https else "http"
        if self.region:
            opts["region"] = self.region
        if self.access_key and self.secret_key:
            opts.update(access_key=self.access_key, secret_key=self.secret_key)
            if self.session_token:
                opts["session_token"] = self.session_token
        return opts  # pyarrow addresses buckets by path whenever an endpoint is set, as S3A's path style does

    def delta_options(self) -> Dict[str, str]:
        """``storage_options`` of ``deltalake.DeltaTable`` (delta-rs's object_store keys)."""
        opts: Dict[str, str] = {}
        if self.endpoint:
            opts["AWS_ENDPOINT_URL"] = f"{'https' if self.https else 'http'}://{self.endpoint}"
            if not self.https:
                opts["AWS_ALLOW_HTTP"] = "true"
        opts["AWS_REGION"] = self.region or "us-east-1"
        if self.access_key and self.secret_key:
            opts.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
            if self.session_token:
                opts["AWS_SESSION_TOKEN"] = self.session_token
        opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if self.path_style or self.endpoint else "true"
        return opts


def _truthy(value: Optional[str], default: bool) -> bool:
    return default if value is None else value.strip().lower() in ("true", "1", "yes")


def s3_settings(hadoop: Mapping[str, str], bucket: str) -> S3Settings:
    """The S3A settings of ``bucket`` from Hadoop keys (``fs.s3a.bucket.BUCKET.KEY`` overrides ``fs.s3a.KEY``)."""

    def get(key: str) -> Optional[str]:
        value = hadoop.get(f"fs.s3a.bucket.{bucket}.{key}", hadoop.get(f"fs.s3a.{key}"))
        return value.strip() if isinstance(value, str) and value.strip() else None

    endpoint, https = get("endpoint"), _truthy(get("connection.ssl.enabled"), True)
    if endpoint and "://" in endpoint:
        proto, endpoint = endpoint.split("://", 1)
        https = proto.lower() == "https"
    return S3Settings(endpoint=endpoint.rstrip("/") if endpoint else None, https=https,
                      region=get("endpoint.region") or get("region"), access_key=get("access.key"),
                      secret_key=get("secret.key"), session_token=get("session.token"),
                      path_style=_truthy(get("path.style.access"), False))


#: (pattern in an error text, problem, the setting to fix); the first match wins.
_CAUSES = (
    (r"NoSuchBucket|UnknownStoreException|bucket does not exist|does not exist \(bucket\)|Bucket .* does not exist",
     "its bucket does not exist",
     "create the bucket, or correct the path's bucket name"),
    (r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|SIGNATURE_DOES_NOT_MATCH|\b403\b|Forbidden|"
     r"NoAuthWithAWSException|No AWS Credentials|UNRECOGNIZED_CLIENT|InvalidClientTokenId",
     "the store refused the credentials (access denied)",
     "set valid credentials: spark.hadoop.fs.s3a.access.key and spark.hadoop.fs.s3a.secret.key (tma-spark "
     "--conf, or spark-defaults.conf), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an instance role "
     "with access to the path"),
    (r"NETWORK_CONNECTION|curlCode|Could not connect|Connection refused|ConnectException|UnknownHostException|"
     r"Unable to execute HTTP request|SdkClientException|AWSClientIOException|timed out|ConnectTimeout",
     "the store's endpoint cannot be reached",
     "check spark.hadoop.fs.s3a.endpoint (host and port; http:// for a server without TLS) and that the "
     "server is running and reachable from this machine"),
)


def explain(path: str, error: str) -> Optional[str]:
    """A message naming ``path``, the problem and the setting to fix, when ``error`` (a pyarrow, delta-rs or
    Hadoop error text) is an access, bucket or connection failure of an object store; else None."""
    for pattern, problem, fix in _CAUSES:
        if re.search(pattern, error):
            first = error.strip().splitlines()[0] if error.strip() else ""
            return f"{path}: {problem} ({first[:240]}). Fix: {fix}."
    return None
