"""Tools to check bpfilter against the kernel: namespaces, packets, traffic, differential runs."""
