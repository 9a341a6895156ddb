"""Lead jobs: recompute a workspace's lead scores and stages after its rules changed."""
from asthron.jobs.registry import job
from asthron.services import lead_pipeline  # installs the rescore-on-rule-change hook in every process


@job("maintenance", timeout=1800)
def rescore_leads(workspace_id):
    """Recompute the score and stage of every lead of workspace `workspace_id`."""
    lead_pipeline.rescore_workspace(workspace_id)
