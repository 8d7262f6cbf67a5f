"""Full-graph inference primitives as Spark jobs: message passing (``propagate``) and FastRP structural features."""
