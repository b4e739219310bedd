"""The cluster stage: namespaces, links, cgroups and workload agents (the `none` baseline).

`plan` is pure (names and addresses); `netns`, `links`, `cgroups`, `procs` and `services`
touch the kernel; `namespaces.NamespaceCluster` composes them into a stage with the
interface every stage has (runner.py): `build`, `teardown`, `sweep`.
`mininet_backend.MininetCluster` builds the same plan with Mininet's API; both sit behind
one small interface (`backend.ClusterBackend`), chosen by name (`backend.make_cluster`)."""
