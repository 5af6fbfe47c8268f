"""efsctl: two Lambda functions sharing one EFS file system."""

__version__ = "0.1.0"
