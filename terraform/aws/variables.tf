variable "cluster_id" {
  description = "The deployment file's cluster_id: tags every resource and unit (scaler:cluster)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,48}$", var.cluster_id))
    error_message = "1 to 49 letters, digits, '-' or '_', starting with a letter or digit (IAM role names hold 64)."
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "vpc_cidr" {
  type    = string
  default = "10.42.0.0/16"
}

variable "availability_zones" {
  description = "Two AZs of var.region, one subnet in each."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "Give exactly two availability zones."
  }
}

variable "subnet_cidrs" {
  type    = list(string)
  default = ["10.42.0.0/20", "10.42.16.0/20"]
  validation {
    condition     = length(var.subnet_cidrs) == 2
    error_message = "Give one CIDR per availability zone."
  }
}

variable "scheduler_cidr" {
  description = "Where the scheduler (and the adapter) run: the only source outside the group allowed in."
  type        = string
  validation {
    condition     = can(cidrhost(var.scheduler_cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], var.scheduler_cidr)
    error_message = "A CIDR narrower than the whole internet."
  }
}

variable "scheduler_port" {
  type    = number
  default = 6378
}

variable "public_ip" {
  description = "Workers get a public IP to reach the scheduler, SSM and package mirrors through the internet gateway."
  type        = bool
  default     = true
}

variable "ami_id" {
  description = "The workers' image; null: the latest Amazon Linux 2023 (x86_64)."
  type        = string
  default     = null
}

variable "instance_type" {
  description = "The template's default; the adapter's groups may override it per launch."
  type        = string
  default     = "t3.medium"
}

variable "root_device_name" {
  type    = string
  default = "/dev/xvda"
}

variable "root_volume_gb" {
  type    = number
  default = 20
}

variable "adapter_reads_keys" {
  description = "Let the adapter's policy read the keys parameter (only if the adapter itself dials with CURVE keys from SSM)."
  type        = bool
  default     = false
}


variable "tags" {
  description = "Extra tags for every resource; scaler:cluster is always added."
  type        = map(string)
  default     = {}
}

variable "flow_log_retention_days" {
  description = "Rejected connections of the VPC are logged to CloudWatch for this long."
  type        = number
  default     = 365
}

variable "head" {
  description = "Add a head instance running scaler_scheduler and scaler_worker_adapter_ec2 (head.tf)."
  type        = bool
  default     = false
}

variable "head_instance_type" {
  type    = string
  default = "t3.small"
}

variable "scaler_source" {
  description = "What the head pip-installs: a pinned version, a wheel URL or a git URL, with the ec2 extra."
  type        = string
  default     = "scaler[ec2]"
}

variable "client_cidrs" {
  description = "Networks (a VPN, a peered VPC) whose programs dial the head's scheduler; [] = SSH tunnels only."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "CIDRs narrower than the whole internet."
  }
}
