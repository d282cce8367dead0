"""The node agent: what a kubelet does. Imports runtime and netns, never the reverse."""
