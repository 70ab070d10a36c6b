"""The autoscaler: config, policy, node providers and the reconcile loop on the head."""
