output "cluster_id" {
  value = var.cluster_id
}

output "region" {
  value = var.region
}

output "subnet_ids" {
  value = aws_subnet.workers[*].id
}

output "security_group_id" {
  value = aws_security_group.workers.id
}

output "launch_template_id" {
  value = aws_launch_template.workers.id
}

output "launch_template_name" {
  value = aws_launch_template.workers.name
}

output "instance_profile_name" {
  value = aws_iam_instance_profile.workers.name
}

output "instance_profile_arn" {
  value = aws_iam_instance_profile.workers.arn
}

output "keys_parameter_prefix" {
  description = "The ec2 adapter's curve_keys_parameter: SecureStrings <prefix>/client.key_secret and <prefix>/server.key."
  value       = local.keys_prefix
}

output "adapter_policy_arn" {
  description = "Attach to the role or user the adapter runs as."
  value       = aws_iam_policy.adapter.arn
}

output "head_private_ip" {
  description = "The head's scheduler is tcp://<this>:<scheduler_port> (null without head = true)."
  value       = one(aws_instance.head[*].private_ip)
}

output "head_keys_prefix" {
  description = "SecureStrings <prefix>/<file> of the head's whole scaler_keygen directory."
  value       = local.head_keys
}
