-- An order still open at the broker now records in `qty` what it has filled so far (0 until its
-- first partial fill; `requested_qty` is what was sent), and the day book counts that. Rows
-- written before kept the requested quantity in `qty`: move it to `requested_qty` and start `qty`
-- at 0; the next reconcile records what each order has really filled.
UPDATE dispatch_executions
SET requested_qty = coalesce(requested_qty, qty), qty = 0
WHERE status = 'submitted';
