"""The EC2 provider: units are EC2 instances tagged with the cluster's tags, each running its workers."""
