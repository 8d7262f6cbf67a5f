"""Object-store settings and errors (pure): Hadoop's fs.s3a.* keys as pyarrow and delta-rs options."""

import pytest

from tma_spark import fs
from tma_spark.commands import spark_settings
from tma_spark.errors import ConfigError
from tma_spark.stores import explain, s3_settings, scheme, split_bucket

HADOOP = {"fs.s3a.endpoint": "http://127.0.0.1:9000", "fs.s3a.access.key": "AK", "fs.s3a.secret.key": "SK",
          "fs.s3a.path.style.access": "true", "fs.s3a.endpoint.region": "eu-west-1",
          "fs.s3a.bucket.other.endpoint": "s3.us-east-2.amazonaws.com", "fs.s3a.bucket.other.access.key": "AK2"}


def test_s3_settings_follow_s3a_keys_with_per_bucket_overrides():
    lake = s3_settings(HADOOP, "lake")
    assert (lake.endpoint, lake.https, lake.region, lake.path_style) == ("127.0.0.1:9000", False, "eu-west-1", True)
    assert lake.arrow_options()["scheme"] == "http" and lake.arrow_options()["access_key"] == "AK"
    delta = lake.delta_options()
    assert delta["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and delta["AWS_ALLOW_HTTP"] == "true"
    assert delta["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false" and delta["AWS_SECRET_ACCESS_KEY"] == "SK"
    other = s3_settings(HADOOP, "other")
    assert (other.endpoint, other.https, other.access_key, other.secret_key) == (
        "s3.us-east-2.amazonaws.com", True, "AK2", "SK")
    assert "SK" not in repr(lake) and "AK" not in repr(lake)  # credentials never reach a log line


def test_without_settings_each_library_uses_its_default_chain():
    plain = s3_settings({}, "lake")
    opts = plain.arrow_options()
    assert "access_key" not in opts and "endpoint_override" not in opts
    assert "AWS_ACCESS_KEY_ID" not in plain.delta_options()


@pytest.mark.parametrize("error, problem, setting", [
    ("OSError: AWS Error ACCESS_DENIED during HeadBucket operation", "refused the credentials", "access.key"),
    ("Py4JJavaError: java.nio.file.AccessDeniedException: s3a://b/x: getFileStatus: 403", "refused", "secret.key"),
    ("OSError: AWS Error NETWORK_CONNECTION: curlCode: 7, Could not connect", "cannot be reached", "endpoint"),
    ("UnknownStoreException: bucket does not exist", "bucket does not exist", "bucket"),
])
def test_store_errors_name_the_path_and_the_setting(error, problem, setting):
    message = explain("s3a://b/x", error)
    assert message.startswith("s3a://b/x: ") and problem in message and setting in message and "Fix:" in message


def test_other_errors_are_not_rewritten():
    assert explain("s3a://b/x", "ValueError: bad schema") is None
    exc = ValueError("bad schema")
    assert fs.store_error("s3a://b/x", exc) is exc


def test_paths_and_schemes():
    assert scheme("s3a://b/k") == "s3a" and scheme("/tmp/x") == "" and scheme("file:/x") == "file"
    assert scheme("C:/x") == ""  # a drive letter is not a scheme
    assert split_bucket("s3a://b/k/l/") == ("b", "k/l")
    assert fs.join("s3a://b/x/", "run", "metrics.jsonl") == "s3a://b/x/run/metrics.jsonl"
    assert fs.is_remote("s3a://b") and fs.is_object_store("gs://b") and not fs.is_object_store("hdfs://n/x")
    assert not fs.is_remote("/tmp/x") and not fs.is_remote("file:/tmp/x")
    assert fs.qualify("s3a://b/x") == "s3a://b/x" and fs.qualify("rel").startswith("/")
    assert fs.delta_location("s3a://b/t")[0] == "s3://b/t"


def test_spark_settings_from_the_config_file_and_conf_flags():
    doc = {"spark_conf": {"spark.hadoop.fs.s3a.endpoint": "http://a:1", "spark.executor.memory": "2g"}}
    conf = spark_settings(["spark.hadoop.fs.s3a.endpoint=http://b:2", "spark.x=a=b"], doc)
    assert conf == {"spark.hadoop.fs.s3a.endpoint": "http://b:2", "spark.executor.memory": "2g", "spark.x": "a=b"}
    assert fs.hadoop_keys(conf) == {"fs.s3a.endpoint": "http://b:2"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        spark_settings(["spark.hadoop.fs.s3a.endpoint"])
    with pytest.raises(ConfigError, match="spark_conf must be a mapping"):
        spark_settings([], {"spark_conf": ["x"]})


def test_files_are_written_whole_and_read_back_locally(tmp_path):
    path = str(tmp_path / "f.json")
    fs.write_json(path, {"a": float("nan")})
    assert fs.read_text(None, path).replace(" ", "").replace("\n", "") == '{"a":null}'
    assert fs.is_file(path) and fs.exists(None, path) and not fs.is_file(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary sibling left
    with pytest.raises(FileNotFoundError):
        fs.read_bytes(str(tmp_path / "absent"))
