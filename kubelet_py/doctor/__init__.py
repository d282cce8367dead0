"""`kubelet-py doctor`: facts gathered from the host (facts.py, the edge) judged by pure checks
(checks.py), one line per check with its fix."""
