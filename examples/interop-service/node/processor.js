// The Node email service's processor for the "email" queue: the same module
// shape as a BullMQ sandboxed processor, so production can run it either way:
//
//   new Worker('email', require('./processor'), { connection })      // in-process
//   new Worker('email', __dirname + '/processor.js', { connection })  // sandboxed
'use strict';

const TEMPLATES = { welcome: 'Welcome aboard, {name}!', reset: 'Reset your password, {name}.' };

module.exports = async function sendEmail(job) {
  const { to, name, template } = job.data;
  if (typeof to !== 'string' || !to.includes('@')) {
    throw new Error(`invalid recipient: ${JSON.stringify(to)}`);
  }
  const text = TEMPLATES[template || job.name];
  if (!text) throw new Error(`unknown template: ${template || job.name}`);
  await job.updateProgress(50);
  await job.log(`rendering ${template || job.name} for ${to}`);
  const body = text.replace('{name}', name || to);
  // (a real service would hand `body` to its mail provider here)
  await job.updateProgress(100);
  return { sent: true, to, body };
};
