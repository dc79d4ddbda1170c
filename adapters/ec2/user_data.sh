#!/bin/bash
# Scaler worker unit @UNIT_ID@, rendered by scaler.adapters.ec2.bootstrap. No secret is in this file:
# CURVE keys, if any, are read at boot from SSM Parameter Store with the instance profile's rights.
# Dead-man's switch: when the workers have exited (or a step below failed) the instance shuts down,
# and InstanceInitiatedShutdownBehavior=terminate ends it, so an instance nobody uses does not linger.
set -eu  # a failing setup or key fetch ends the script at once, and so the instance
trap 'shutdown -h now' EXIT
# Workers watch the metadata service for a spot interruption notice (a cheap 404 on on-demand instances).
export SCALER_INSTANCE_METADATA="${SCALER_INSTANCE_METADATA-http://169.254.169.254}"
@ENVIRONMENT@
@SETUP@
@KEYS@
@WORKERS@
wait
