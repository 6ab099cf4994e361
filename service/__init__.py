"""The served API: the BentoML service, the Lambda handler and the validation they share."""
