<?php

/**
 * Forgot password?
 *
 * Adds a "Forgot password?" link under Roundcube's login form, leading to
 * the pages of the sms_recovery gateway, where a person gets a code by SMS
 * and sets a new password. The link carries the user name typed in the form,
 * if any, as ?account=, so the gateway's first page comes filled in: the one
 * of a failed login from the server, the one being typed from a small script
 * (without scripts the link still works, without the name).
 *
 * Configuration (Roundcube's config.inc.php):
 *
 *   $config['plugins'][] = 'forgot_password';
 *   // Where the gateway's pages are: a path on this site, or a full URL.
 *   // Default: '/recovery/'.
 *   $config['forgot_password_url'] = '/recovery/';
 */
class forgot_password extends rcube_plugin
{
    // Only the login page has the form.
    public $task = 'login|logout';
    public $noajax = true;

    public function init()
    {
        $this->add_hook('template_object_loginform', [$this, 'loginform']);
    }

    /**
     * Appends the link to the login form's HTML.
     *
     * @param array $args The hook's arguments: 'content' is the form's HTML
     *
     * @return array The arguments with the link added to 'content'
     */
    public function loginform($args)
    {
        $rcmail = rcmail::get_instance();
        $this->add_texts('localization/');

        $url = (string) $rcmail->config->get('forgot_password_url', '/recovery/');
        // The name of the login that just failed, as Roundcube shows it again.
        $user = trim(rcube_utils::get_input_string('_user', rcube_utils::INPUT_POST));

        $link = html::a(
            [
                'href' => self::link($url, $user),
                'id' => 'rcmforgotpassword',
                'data-recovery-url' => $url,
            ],
            rcube::Q($this->gettext('forgotpassword'))
        );
        $args['content'] .= html::p('forgot-password', $link);

        // Keep the link's account in step with the user name field.
        $rcmail->output->add_script(<<<'JS'
var forgotPassword = document.getElementById('rcmforgotpassword'),
    loginUser = document.getElementById('rcmloginuser');
if (forgotPassword && loginUser) {
    var setAccount = function () {
        var url = forgotPassword.getAttribute('data-recovery-url'),
            user = loginUser.value.trim();
        forgotPassword.href = user === '' ? url
            : url + (url.indexOf('?') < 0 ? '?' : '&') + 'account=' + encodeURIComponent(user);
    };
    loginUser.addEventListener('input', setAccount);
    setAccount();
}
JS, 'docready');

        return $args;
    }

    /**
     * The gateway's URL with the account, if any, in its query.
     */
    private static function link($url, $user)
    {
        if ($user === '') {
            return $url;
        }
        return $url . (strpos($url, '?') === false ? '?' : '&') . 'account=' . rawurlencode($user);
    }
}
