// The Node billing API's producer: called by the HTTP handler with the Queue it
// was built with, so a test can hand it a Queue on a test Redis instead.
'use strict';

async function enqueueInvoice(queue, order) {
  return queue.add(
    'invoice',
    {
      orderId: order.id,
      customer: { email: order.email, country: order.country },
      amountCents: Math.round(order.amount * 100),
      currency: order.currency || 'EUR',
      lines: order.lines.map(line => ({ sku: line.sku, qty: line.qty })),
    },
    {
      jobId: `invoice-${order.id}`,
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: 1000,
    },
  );
}

module.exports = { enqueueInvoice };
