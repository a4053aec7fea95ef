//! The last fallback: a written reply per intent and language, so the pipeline never
//! stalls. Languages: en, de, fr, es, nl; others get English. `{product}` is filled in.

use async_trait::async_trait;

use crate::draft::{Backend, BackendError, Draft, DraftRequest};
use crate::intent::Intent;

/// Drafts from the built-in templates.
#[derive(Debug, Default, Clone, Copy)]
pub struct TemplateBackend;

/// The template for an intent in a language (English where the language has none).
pub fn template(intent: Intent, language: Option<&str>) -> &'static str {
    let lang = language
        .and_then(|l| l.split(['-', '_']).next())
        .map(str::to_ascii_lowercase);
    let table = match lang.as_deref() {
        Some("de") => &DE,
        Some("fr") => &FR,
        Some("es") => &ES,
        Some("nl") => &NL,
        _ => &EN,
    };
    let at = Intent::ALL.iter().position(|i| *i == intent).unwrap_or(0);
    table[at]
}

/// Fills a template for a request.
pub fn render(intent: Intent, request: &DraftRequest) -> String {
    let product = request.product.as_deref().unwrap_or("service");
    template(intent, request.language.as_deref()).replace("{product}", product)
}

#[async_trait]
impl Backend for TemplateBackend {
    fn name(&self) -> &str {
        "template"
    }

    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        Ok(Draft {
            text: render(request.intent.intent, request),
            backend: "template".into(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
        })
    }
}

// One entry per intent, in `Intent::ALL` order.
const EN: [&str; 11] = [
    "Thank you for reaching out about your bill. We are checking the charges on your account and will correct anything that is wrong.",
    "Thank you for your message. We have passed your request about a refund to our billing team, who will review it and get back to you.",
    "We are sorry to hear you want to leave. A colleague will contact you about your {product} contract and the options you have.",
    "We are sorry your {product} is causing trouble. Please restart it once; if the problem continues, we will run a line check and arrange a fix.",
    "Thanks for your question about your account. You can change these details in the app under Settings, and we are happy to help if anything is unclear.",
    "Thanks for asking about your {product} contract. We are looking up its terms and end date and will send you the details.",
    "Thank you for your patience. We are tracking your {product} order and will update you on the delivery as soon as we know more.",
    "Thank you for your message. We take your concerns seriously; a member of our team will review your case and contact you.",
    "Of course. A member of our support team will take over this conversation and get back to you personally.",
    "Thank you for your kind words! We are glad your {product} works well, and we have passed your feedback on to the team.",
    "Thank you for contacting us about your {product}. We have received your message and will get back to you shortly.",
];

const DE: [&str; 11] = [
    "Vielen Dank für Ihre Nachricht zu Ihrer Rechnung. Wir prüfen die Buchungen auf Ihrem Konto und korrigieren alles, was nicht stimmt.",
    "Vielen Dank für Ihre Nachricht. Wir haben Ihre Anfrage zur Erstattung an unsere Buchhaltung weitergegeben, die sich bei Ihnen meldet.",
    "Es tut uns leid, dass Sie kündigen möchten. Jemand aus unserem Team meldet sich bei Ihnen zu Ihrem Vertrag und Ihren Möglichkeiten.",
    "Es tut uns leid, dass Ihr {product} Probleme macht. Bitte starten Sie das Gerät einmal neu; wenn das Problem bleibt, prüfen wir Ihre Leitung.",
    "Danke für Ihre Frage zu Ihrem Konto. Sie können diese Angaben in der App unter Einstellungen ändern, und wir helfen Ihnen gerne dabei.",
    "Danke für Ihre Frage zu Ihrem Vertrag. Wir sehen uns die Bedingungen und die Laufzeit an und schicken Ihnen die Einzelheiten.",
    "Vielen Dank für Ihre Geduld. Wir verfolgen Ihre Bestellung und melden uns, sobald wir mehr über die Lieferung wissen.",
    "Vielen Dank für Ihre Nachricht. Wir nehmen Ihr Anliegen ernst; jemand aus unserem Team prüft Ihren Fall und meldet sich bei Ihnen.",
    "Selbstverständlich. Jemand aus unserem Support-Team übernimmt dieses Gespräch und meldet sich persönlich bei Ihnen.",
    "Vielen Dank für Ihre freundlichen Worte! Wir freuen uns, dass alles funktioniert, und geben Ihr Lob an das Team weiter.",
    "Vielen Dank für Ihre Nachricht. Wir haben sie erhalten und melden uns so bald wie möglich bei Ihnen.",
];

const FR: [&str; 11] = [
    "Merci pour votre message concernant votre facture. Nous vérifions les montants de votre compte et corrigerons toute erreur.",
    "Merci pour votre message. Votre demande de remboursement a été transmise à notre service de facturation, qui reviendra vers vous.",
    "Nous regrettons que vous souhaitiez nous quitter. Un conseiller vous contactera au sujet de votre contrat et des options possibles.",
    "Nous sommes désolés que votre {product} pose problème. Merci de le redémarrer une fois ; si le problème persiste, nous vérifierons votre ligne.",
    "Merci pour votre question sur votre compte. Vous pouvez modifier ces informations dans l'application, rubrique Paramètres, et nous restons à votre disposition.",
    "Merci pour votre question sur votre contrat. Nous vérifions ses conditions et sa date de fin et vous enverrons les détails.",
    "Merci pour votre patience. Nous suivons votre commande et vous tiendrons informé de la livraison dès que possible.",
    "Merci pour votre message. Nous prenons votre demande au sérieux ; un membre de notre équipe examinera votre dossier et vous contactera.",
    "Bien sûr. Un conseiller de notre équipe va reprendre cette conversation et vous répondra personnellement.",
    "Merci beaucoup pour vos mots aimables ! Nous sommes ravis que tout fonctionne et transmettons vos remerciements à l'équipe.",
    "Merci de nous avoir contactés. Nous avons bien reçu votre message et reviendrons vers vous très rapidement.",
];

const ES: [&str; 11] = [
    "Gracias por escribirnos sobre su factura. Estamos revisando los cargos de su cuenta y corregiremos cualquier error.",
    "Gracias por su mensaje. Hemos enviado su solicitud de reembolso a nuestro equipo de facturación, que le responderá pronto.",
    "Lamentamos que quiera darse de baja. Un compañero se pondrá en contacto con usted sobre su contrato y sus opciones.",
    "Lamentamos que su {product} esté dando problemas. Por favor, reinícielo una vez; si el problema continúa, revisaremos su línea.",
    "Gracias por su pregunta sobre su cuenta. Puede cambiar estos datos en la aplicación, en Ajustes, y con gusto le ayudamos si lo necesita.",
    "Gracias por su pregunta sobre su contrato. Estamos consultando sus condiciones y la fecha de fin y le enviaremos los detalles.",
    "Gracias por su paciencia. Estamos siguiendo su pedido y le informaremos sobre la entrega en cuanto sepamos más.",
    "Gracias por su mensaje. Nos tomamos su caso muy en serio; una persona de nuestro equipo lo revisará y se pondrá en contacto con usted.",
    "Por supuesto. Una persona de nuestro equipo de atención se hará cargo de esta conversación y le responderá personalmente.",
    "¡Muchas gracias por sus amables palabras! Nos alegra que todo funcione bien y se lo haremos saber al equipo.",
    "Gracias por ponerse en contacto con nosotros. Hemos recibido su mensaje y le responderemos lo antes posible.",
];

const NL: [&str; 11] = [
    "Bedankt voor uw bericht over uw rekening. We controleren de kosten op uw account en corrigeren alles wat niet klopt.",
    "Bedankt voor uw bericht. We hebben uw verzoek om terugbetaling doorgestuurd naar onze afdeling facturatie, die contact met u opneemt.",
    "Jammer dat u wilt opzeggen. Een collega neemt contact met u op over uw contract en de mogelijkheden die u heeft.",
    "Het spijt ons dat uw {product} problemen geeft. Start het apparaat één keer opnieuw op; als het probleem blijft, controleren we uw verbinding.",
    "Bedankt voor uw vraag over uw account. U kunt deze gegevens in de app wijzigen onder Instellingen, en we helpen u graag als iets niet duidelijk is.",
    "Bedankt voor uw vraag over uw contract. We zoeken de voorwaarden en de einddatum op en sturen u de details.",
    "Bedankt voor uw geduld. We volgen uw bestelling en laten u weten wanneer we meer weten over de levering.",
    "Bedankt voor uw bericht. We nemen uw zorgen serieus; iemand van ons team bekijkt uw zaak en neemt contact met u op.",
    "Natuurlijk. Een medewerker van ons team neemt dit gesprek over en neemt persoonlijk contact met u op.",
    "Hartelijk dank voor uw vriendelijke woorden! Fijn dat alles goed werkt; we geven uw compliment door aan het team.",
    "Bedankt voor uw bericht. We hebben het ontvangen en nemen zo snel mogelijk contact met u op.",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::{GuardrailConfig, check};

    /// Every template passes every guardrail in its own language, so that a template
    /// draft is only reviewed for the policy's reasons, never for its own text.
    #[test]
    fn every_template_passes_the_guardrails() {
        let config = GuardrailConfig::default();
        let mut problems = Vec::new();
        for lang in ["en", "de", "fr", "es", "nl"] {
            for intent in Intent::ALL {
                let text = template(intent, Some(lang)).replace("{product}", "router");
                let failed: Vec<_> = check(&config, &text, Some(lang))
                    .into_iter()
                    .filter(|r| !r.passed)
                    .collect();
                if !failed.is_empty() {
                    problems.push(format!("{lang}/{intent:?}: {failed:?}"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn unknown_languages_get_english() {
        assert_eq!(template(Intent::General, Some("ja")), EN[10]);
        assert_eq!(template(Intent::Billing, Some("de-AT")), DE[0]);
        assert_eq!(template(Intent::Billing, None), EN[0]);
    }
}
