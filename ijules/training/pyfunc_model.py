"""Models-from-code entry point: MLflow runs this file to build the served model.

Logging the model as code (rather than a pickled object) keeps the artifact readable and free of
pickle's risks; the policy weights travel as artifacts.
"""

from mlflow.models import set_model

from ijules.training.pyfunc import RecurrentPolicyModel

set_model(RecurrentPolicyModel())
