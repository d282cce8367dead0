"""Images and isolated processes: what containerd and runc do.

Never imports kubelet_py or netns; takes and returns plain dataclasses.
"""
