"""The cluster stage: namespaces, links, cgroups and workload agents (the `none` baseline).

`plan` is pure (names and addresses); `netns`, `links`, `cgroups`, `procs` and `services`
touch the kernel; `namespaces.NamespaceCluster` composes them into a stage with the
interface every stage has (runner.py): `build`, `teardown`, `sweep`. Another backend (e.g.
Mininet) is another class with the same interface, chosen in `runner.stages()`."""
