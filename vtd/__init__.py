"""vtd-sweep: fine-tune the VTD video gaze-target model and sweep its hyperparameters."""

__version__ = "0.1.0"
