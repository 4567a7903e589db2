// Test shim for wix-window-frontend: the page's language.
export default { multilingual: { currentLanguage: 'en' } };
