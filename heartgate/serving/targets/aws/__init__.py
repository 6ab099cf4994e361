"""The aws deploy target: Lambda behind API Gateway, deployed by the Terraform root
`infra/terraform/envs/aws`. `target.py` is the target and its config section (`deploy.aws`),
`package.py` builds the zip it deploys, without Docker."""

from heartgate.serving.targets.aws.target import AwsLambdaTarget, AwsSettings

__all__ = ["AwsLambdaTarget", "AwsSettings"]
