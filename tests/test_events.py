"""Structured events (tma_spark.events): emitted through logging, read from the record, not the text."""

import logging

from tma_spark.events import EVENT_LOGGER, Event, Recorder, emit


def test_recorder_collects_named_events_in_order_and_restores_the_logger():
    logger = logging.getLogger(EVENT_LOGGER)
    level, handlers = logger.level, list(logger.handlers)
    with Recorder("job.phase") as rec:
        emit("job.phase", phase="a")
        emit("other.thing", x=1)
        emit("job.phase", phase="b")
    assert [e.fields for e in rec.events] == [{"phase": "a"}, {"phase": "b"}]
    assert all(isinstance(e, Event) and e.name == "job.phase" for e in rec.events)
    assert rec.events[0].time <= rec.events[1].time
    assert logger.level == level and logger.handlers == handlers
    emit("job.phase", phase="c")  # after the block: not recorded
    assert len(rec.events) == 2


def test_events_are_records_with_a_tma_event_attribute(caplog):
    with caplog.at_level(logging.DEBUG, logger=EVENT_LOGGER):
        emit("job.phase", phase="x", n=3)
    (record,) = [r for r in caplog.records if r.name == EVENT_LOGGER]
    assert record.levelno == logging.DEBUG
    assert record.tma_event.name == "job.phase" and record.tma_event.fields == {"phase": "x", "n": 3}
    assert record.getMessage() == "job.phase phase=x n=3"


def test_an_unnamed_recorder_collects_every_event():
    with Recorder() as rec:
        emit("a")
        emit("b", k="v")
    assert [e.name for e in rec.events] == ["a", "b"]
