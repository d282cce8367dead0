"""`python -m kubelet_py ...`: the same as the `kubelet-py` command."""

from kubelet_py.entry import main

main()
