// The dashboard's shell: login with the admin token, the tabs (one hash route per page),
// and the live-update indicator. Pages are modules with mount(root, ctx) returning their
// cleanup; ctx.live is the shared stream of status, model and request updates.

import { get, onUnauthorized, setToken, token } from './api.js';
import { fill, h } from './dom.js';
import { Live } from './live.js';
import keys from './keys.js';
import models from './models.js';
import overview from './overview.js';
import playground from './playground.js';
import requests from './requests.js';

const PAGES = { overview, models, requests, keys, playground };
const LIVE_TEXT = { off: '', connecting: 'connecting…', events: 'live', polling: 'live (polling)', offline: 'offline' };

const $ = (id) => document.getElementById(id);
const live = new Live();
let isAuthOn = false;
let isShown = false;
let unmount = null;

function showLogin(message = '') {
  isShown = false;
  live.stop();
  if (unmount) unmount();
  unmount = null;
  fill($('main'));
  $('tabs').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !message;
  $('login-error').textContent = message;
  $('login-token').focus();
}

function showApp() {
  isShown = true;
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('logout').hidden = !isAuthOn;
  live.start();
  route();
}

function route() {
  if (!isShown) return;
  const name = location.hash.replace(/^#\/?/, '').split('/')[0];
  const page = PAGES[name] ? name : 'overview';
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.page === page);
  if (unmount) unmount();
  const root = $('main');
  fill(root);
  root.dataset.page = page;
  document.title = `infergate · ${page}`;
  unmount = PAGES[page].mount(root, { live }) || null;
}

async function login(event) {
  event.preventDefault();
  const value = $('login-token').value.trim();
  setToken(value);
  try {
    await get('/admin/keys'); // an admin-only route: proves the token is the admin token
    $('login-token').value = '';
    showApp();
  } catch (e) {
    setToken('');
    showLogin(e.status === 401 ? 'That token was not accepted.'
      : e.status === 403 ? 'That is an API key, not the admin token (auth.admin_token).'
        : `Cannot reach the server: ${e.message}`);
  }
}

async function boot() {
  live.on('mode', (mode) => {
    $('live').dataset.mode = mode;
    $('live-text').textContent = LIVE_TEXT[mode] || mode;
  });
  onUnauthorized(() => {
    if (isShown) {
      setToken('');
      showLogin('The server refused the token (it may have changed); log in again.');
    }
  });
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => {
    setToken('');
    showLogin();
  });
  window.addEventListener('hashchange', route);
  try {
    isAuthOn = (await get('/ui/auth.json')).auth === true;
  } catch (e) {
    fill($('main'), h('p', { class: 'error' }, `Cannot reach the server: ${e.message}`));
    return;
  }
  if (isAuthOn && !token()) showLogin();
  else showApp();
}

boot();
