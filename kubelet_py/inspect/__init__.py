"""`kubelet-py inspect pod`: the Linux behind a pod, read live from the kernel and set beside the
agent's records. `report` (pure) turns records and facts into the report; `gather` (edge) reads
them in a worker thread of the daemon; `command` is the CLI that renders the daemon's report."""
