'use strict';
/* The same document as loader_sample.json, as a CommonJS module. */
const app = {
  ns: 'demo-store',
  name: 'Demo Store',
  enabled: true,
  rating: 2.5,
  icon: null,
  tags: ['orders', 'customers'],
  sync: {
    resources: {
      orders: {
        endpoints: { list: { url: 'https://api.example.com/orders?page={page}', method: 'GET' } },
        pagination: { defaultLimit: 50, maxLimit: 100 },
        apiMapping: { code: 'id', totalAmount: { path: 'amounts.total', transform: 'toNumberOrNull' } },
      },
    },
    handlers: { 'order.created': { recordType: 'order', operation: 'create' } },
  },
};

module.exports = app;
