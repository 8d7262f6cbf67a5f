"""Whole-graph operations on Spark that several stages share: message passing (:mod:`.propagate`) and
FastRP structural features (:mod:`.fastrp`). No stage owns them: ingest, partition and infer build on them."""
