"""The simulation: a discrete-event model (simpy) of the testbed's experiments, calibrated by
the journals of real runs, for clusters no single machine can hold (docs/simulation.md).

The flow mirrors a real run: a cluster placed by the same planner (placement.py), the
proxies of each architecture (topology.py), their configs (config.py), the fault schedule
played against the proxies (model.py, faults.py), the blast radius and the cost computed
with the definitions of measure/ (radius.py, cost.py), and a journal like a real run's,
marked simulated (journal.py). calibrate.py fits the model's parameters from journals."""
