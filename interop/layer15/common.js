// What the Node side of the layer shares with the Python side (examples/layer15/config.py):
// where Redis is, the key prefix, the queue names and the retry options.
'use strict';

const IORedis = require('ioredis');

const REDIS_URL = process.env.BULLBRIDGE_REDIS_URL || 'redis://localhost:6379';
const prefix = process.env.BULLBRIDGE_PREFIX || 'bull';

const QUEUES = {
  email: 'email',
  images: 'image-processing',
  dataSync: 'data-sync',
  analytics: 'analytics',
  notifications: 'notifications',
};

// Exponential backoff: 1 s, then 2 s.
const RETRY = { attempts: 3, backoff: { type: 'exponential', delay: 1000 } };

// Lower runs first: in a backlog, password resets overtake the newsletter.
const EMAIL_PRIORITY = { 'password-reset': 1, welcome: 5, newsletter: 10 };

// One connection for the Queues of a process; each Worker adds its own blocking one.
const connection = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });

module.exports = { connection, prefix, QUEUES, RETRY, EMAIL_PRIORITY };
