"""The ways the proxy supervisor replaces a proxy in place (mesh/supervisor.py implements
them; the CLI, the `upgrade` fault and the docs take their names from here)."""

HOT_RESTART, RESTART = "hot-restart", "restart"
STRATEGIES = (HOT_RESTART, RESTART)  # what users may ask for
REPLACE = "replace"  # internal: SIGKILL every epoch, then start afresh (a looping Envoy ignores SIGTERM)
DESCRIPTIONS = {
    HOT_RESTART: "the new process takes the listeners over from the old one, which drains",
    RESTART: "stop the old process, then start the new one",
}
