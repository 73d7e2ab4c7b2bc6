// Errors every store engine (sqlite/, postgres/) throws with the same meaning, so that callers
// above store/ handle them without knowing the engine.

/** A row with the same unique key exists already (a login, an address, a structure…). */
export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}

/**
 * deliver() with an Idempotency-Key another request recorded first (DeliveryRequest.idempotency):
 * the unique key decided, nothing of this delivery was stored.
 */
export class IdempotencyKeyTakenError extends StoreConflictError {
  override name = 'IdempotencyKeyTakenError';
}
