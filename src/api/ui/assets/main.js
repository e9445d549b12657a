// The dashboard's entry: who is calling, then one page per hash route (#/ and #/rollouts/<id>).

import { ApiError, getToken, setToken, whoami } from './api.js';
import { h, replace } from './dom.js';
import { mountList } from './list-view.js';
import { mountRollout } from './rollout-view.js';
import { mountSignIn } from './sign-in-view.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const live = document.getElementById('live');
const commandPhases = JSON.parse(document.getElementById('command-phases').textContent);

const LIVE_TEXT = {
  live: 'live',
  reconnecting: 'reconnecting…',
  polling: 'polling',
  ended: 'ended',
  error: 'not live',
};

function setLive(state, detail) {
  live.textContent = LIVE_TEXT[state] ?? state;
  live.dataset.state = state;
  live.title = detail ?? '';
}

/** Asks for confirmation in the page's <dialog>; resolves { reason } or undefined when cancelled. */
function confirm({ title, text, danger }) {
  const dialog = document.getElementById('confirm');
  const reason = document.getElementById('confirm-reason');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  ok.className = danger ? 'danger' : 'primary';
  reason.value = '';
  const opener = document.activeElement;
  const cancel = document.getElementById('confirm-cancel');
  return new Promise((resolve) => {
    const form = dialog.querySelector('form');
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('cancel', onCancel);
      cancel.removeEventListener('click', onCancel);
      if (dialog.open) dialog.close();
      opener?.focus?.();
      resolve(value);
    };
    // Confirm is the form's only submit button, so Enter in the reason field confirms too.
    const onSubmit = (e) => {
      e.preventDefault();
      done({ reason: reason.value.trim() });
    };
    // Escape or Cancel.
    const onCancel = (e) => {
      e.preventDefault();
      done(undefined);
    };
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('cancel', onCancel);
    cancel.addEventListener('click', onCancel);
    dialog.showModal();
    ok.focus();
  });
}

let me;
let unmount = () => {};

function route() {
  unmount();
  setLive('');
  const m = /^#\/rollouts\/([^/]+)$/.exec(location.hash);
  if (m) {
    unmount = mountRollout(main, decodeURIComponent(m[1]), {
      scopes: me.scopes,
      commandPhases,
      setLive,
      confirm,
    });
  } else {
    document.title = 'Rollouts — vane';
    unmount = mountList(main, { namespaces: me.namespaces, setLive });
  }
}

function showWho() {
  const scopes = `${me.scopes.join(', ')}${me.namespaces ? ` in ${me.namespaces.join(', ')}` : ''}`;
  replace(
    who,
    h('span', {}, `${me.name} (${scopes})`),
    getToken()
      ? h(
          'button',
          {
            type: 'button',
            class: 'link',
            onclick: () => {
              setToken('');
              location.reload();
            },
          },
          'Sign out',
        )
      : null,
  );
}

async function start(message) {
  try {
    me = await whoami();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      setToken('');
      mountSignIn(main, {
        message,
        onToken: async (token) => {
          setToken(token);
          try {
            me = await whoami();
          } catch (err) {
            setToken('');
            throw err instanceof ApiError && err.status === 401
              ? new Error('That token is not accepted.')
              : err;
          }
          begin();
        },
      });
      return;
    }
    replace(main, h('p', { class: 'error', role: 'alert' }, `vane did not answer: ${e.message}`));
    return;
  }
  begin();
}

function begin() {
  showWho();
  window.addEventListener('hashchange', () => {
    route();
    main.focus();
  });
  route();
}

start();
