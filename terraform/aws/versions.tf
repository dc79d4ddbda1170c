terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  tags      = merge(var.tags, { "scaler:cluster" = var.cluster_id })
  name      = "scaler-${var.cluster_id}"
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  ec2_arn   = "arn:${local.partition}:ec2:${var.region}:${local.account}"
}
