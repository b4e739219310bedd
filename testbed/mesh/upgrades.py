"""The ways a proxy is replaced in place, and the ways a roll of several proxies goes
(mesh/supervisor.py implements the first, chaos/proxy_faults.py the second; the CLI, the
`upgrade` fault and the docs take their names from here)."""

HOT_RESTART, RESTART, CANARY = "hot-restart", "restart", "canary"
PROXY_STRATEGIES = (HOT_RESTART, RESTART)  # how one proxy is replaced (`testbed upgrade`)
STRATEGIES = (HOT_RESTART, RESTART, CANARY)  # how an `upgrade` fault rolls its proxies
REPLACE = "replace"  # internal: SIGKILL every epoch, then start afresh (a looping Envoy ignores SIGTERM)
DESCRIPTIONS = {
    HOT_RESTART: "the new process takes the listeners over from the old one, which drains",
    RESTART: "stop the old process, then start the new one",
    CANARY: "restart the first proxy alone; on failure halt the roll, else restart the rest one by one",
}
# how each roll replaces one proxy, and whether a failure stops the roll
METHOD = {HOT_RESTART: HOT_RESTART, RESTART: RESTART, CANARY: RESTART}
HALTS_ON_FAILURE = frozenset({CANARY})

# what the new version does: start and become ready, or not (a bootstrap it rejects)
SUCCEEDS, FAILS = "succeeds", "fails"
OUTCOMES = (SUCCEEDS, FAILS)
READY, ROLLED_BACK = "ready", "rolled-back"  # what the supervisor answers an upgrade with
UPGRADE_READY_TIMEOUT = 30.0  # seconds a new process has to become ready before it is rolled back (one that
# exits is caught at once; a loaded 2-core machine can take seconds to bring a good one up)
