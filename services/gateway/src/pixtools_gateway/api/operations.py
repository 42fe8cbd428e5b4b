"""The operation catalogue: what a pipeline may contain, read from the contracts' registry, never hard-coded."""

from fastapi import APIRouter, Depends

from pixtools_contracts import OPERATIONS, Operation
from pixtools_gateway.api.deps import caller
from pixtools_gateway.responses import OperationCatalog, OperationView

# Any valid key reads it, tenant or admin, like every other /v1 route.
router = APIRouter(prefix="/v1/operations", tags=["pipelines"], dependencies=[Depends(caller)])


def _view(operation: Operation) -> OperationView:
    summary = (operation.params.__doc__ or operation.name).strip().splitlines()[0]
    return OperationView(
        op=operation.name,
        service=operation.service,
        description=summary,
        produces_image=operation.produces_image,
        params_schema=operation.params.model_json_schema(),
    )


# The registry is fixed for the life of the process, so the answer is built once.
_CATALOG = OperationCatalog(operations=[_view(operation) for operation in OPERATIONS.values()])


@router.get("", response_model=OperationCatalog, summary="List the operations a pipeline can use")
async def list_operations() -> OperationCatalog:
    """Every registered operation: its name, the service that runs it, and the JSON Schema of its params.

    Clients build pipelines from it (`{"op": ..., "params": ...}`) instead of hard-coding the ops.
    """
    return _CATALOG
