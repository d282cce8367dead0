"""Pod volumes, as the kubelet's volume manager: a pure planner (content.py, plan.py, the rules of
hostpath.py and ownership.py) and a thin kernel edge (mounts.py, tree.py, atomic_writer.py,
subpath.py), put together by manager.py."""
