"""How weights travel between the driver and the trainers: the transport setting and the files exchange."""

import os
import subprocess
import sys

import pytest
import torch

from tma_spark.train.contract import LostTrainer, TrainerResult, from_bytes, to_bytes
from tma_spark.train.exchange import Parcel, open_exchange, resolve_transport, sweep_stale
from tma_spark.train.rounds import _pack, _unpack


@pytest.mark.parametrize("master", ["local", "local[4]", "local[*]", "local[2,3]", "local-cluster[4,1,1024]"])
def test_auto_sends_weights_through_files_when_every_executor_is_on_the_drivers_machine(master):
    assert resolve_transport("auto", master) == "files"
    assert resolve_transport("files", master) == "files"
    assert resolve_transport("spark", master) == "spark"


@pytest.mark.parametrize("master", ["spark://head:7077", "yarn", "k8s://https://api:6443"])
def test_a_cluster_keeps_spark_and_refuses_files_with_the_fix(master):
    assert resolve_transport("auto", master) == "spark"
    with pytest.raises(ValueError) as err:
        resolve_transport("files", master)
    message = str(err.value)
    assert "--weights-transport files" in message and master in message and "--weights-transport spark" in message


def test_a_parcel_is_written_whole_read_by_its_receiver_and_deleted_with_its_folder():
    with open_exchange("files") as exchange:
        first, second = exchange.put(b"abc", "round1-global"), exchange.put(b"abc", "round1-global")
        assert first.path != second.path  # a retried round never overwrites a parcel still to be read
        assert first.value == b"abc" and len(os.listdir(exchange.folder)) == 2
        assert not [n for n in os.listdir(exchange.folder) if n.endswith(".tmp")]
        first.unpersist()
        first.unpersist()  # deleting twice is harmless (a retry's cleanup after the receiver's)
        assert not os.path.exists(first.path) and os.path.exists(second.path)
    assert not os.path.exists(exchange.folder)  # left-overs (a failed round's parcels) go with the folder
    with open_exchange("spark") as none:
        assert none is None


def _result(part: int, opt) -> TrainerResult:
    state = to_bytes({"w": torch.full((3,), float(part))})
    return TrainerResult(part=part, state=state, opt=opt, steps=1, loss=0.5, train_nodes=1, edges=1,
                         sampler="full", load_seconds=0.0, task_seconds=0.0, device="cpu", gpus=(), pid=1, code="")


@pytest.mark.parametrize("opt", [None, b"adam"])
def test_a_result_packed_by_a_trainer_arrives_as_bytes_and_leaves_no_file(opt):
    with open_exchange("files") as exchange:
        sent = _result(2, opt)
        packed = _pack(sent, exchange, round_index=3)
        assert isinstance(packed.state, Parcel) and os.path.basename(packed.state.path).startswith("round3-part2-")
        assert isinstance(packed.opt, Parcel) == (opt is not None)
        received = _unpack(packed)
        assert received == sent and torch.equal(received.state_dict()["w"], torch.full((3,), 2.0))
        assert os.listdir(exchange.folder) == []
    lost = LostTrainer(1, "its task failed")
    assert _pack(lost, None, 1) is lost and _unpack(lost) is lost
    assert _pack(sent, None, 1) is sent and from_bytes(_unpack(sent).state)["w"][0] == 2.0


def test_the_folders_of_drivers_that_are_gone_are_swept_and_live_ones_kept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the id of a process that has exited
    for pid in (gone, os.getpid()):
        (tmp_path / f"tma-spark-weights-{pid}-abc").mkdir()
        (tmp_path / f"tma-spark-weights-{pid}-abc" / "round3-global-x.pt").write_bytes(b"w")
    (tmp_path / "tma-spark-weights-notapid").mkdir()
    assert sweep_stale(str(tmp_path)) == [f"tma-spark-weights-{gone}-abc"]
    assert sorted(os.listdir(tmp_path)) == sorted([f"tma-spark-weights-{os.getpid()}-abc", "tma-spark-weights-notapid"])
